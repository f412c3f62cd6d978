// The talk page: connect to LiveKit with a token from this page's server, publish the
// microphone (always on, or push-to-talk), play the agent, and show what livekit-agents
// publishes: transcripts of both sides (`lk.transcription` text streams), the agent's
// state (`lk.agent.state` attribute), and our tool status / turn latency (data topic).
// Bundled with livekit-client by build.sh; nothing is loaded from elsewhere at run time.
import {
  ParticipantKind,
  Room,
  RoomEvent,
  Track,
} from "livekit-client";

const TRANSCRIPTION_TOPIC = "lk.transcription";
const EVENTS_TOPIC = document.body.dataset.eventsTopic;
const $ = (id) => document.getElementById(id);

const ui = {
  connect: $("connect"),
  mic: $("mic"),
  ptt: $("ptt"),
  hold: $("hold"),
  status: $("status"),
  error: $("error"),
  state: $("agent-state"),
  tool: $("tool"),
  transcript: $("transcript"),
  latency: $("latency").querySelector("tbody"),
};

let room = null;
let micAllowed = window.isSecureContext && !!navigator.mediaDevices;
let lastUserFinalAt = null; // when your last final transcript arrived (browser clock)
let turn = 0;
const segments = new Map(); // segment id -> <li>
const toolsRunning = new Map(); // call id -> name

function setPhase(phase, text) {
  document.body.dataset.phase = phase;
  ui.status.textContent = text;
}

function showError(text) {
  ui.error.textContent = text;
  ui.error.hidden = false;
  setPhase("error", "Not connected.");
}

function explainHttps() {
  if (micAllowed) return;
  $("page-origin").textContent = window.location.origin;
  $("https-notice").hidden = false;
}

// --- agent state, tools, latency ----------------------------------------------------

function setAgentState(state) {
  ui.state.dataset.state = state;
  ui.state.textContent = state === "offline" ? "not connected" : state;
  if (state === "speaking" && lastUserFinalAt !== null) {
    addLatency({ browser_ms: performance.now() - lastUserFinalAt });
    lastUserFinalAt = null;
  }
}

function addLatency({ agent_ms, browser_ms }) {
  // one row per turn: the browser's measure opens it, the agent's (a moment later) fills it
  let row = ui.latency.lastElementChild;
  const needsNew = !row || (browser_ms !== undefined && row.dataset.browser) ||
    (agent_ms !== undefined && row.dataset.agent);
  if (needsNew) {
    turn += 1;
    row = ui.latency.insertRow();
    row.insertCell().textContent = String(turn);
    row.insertCell().textContent = "–";
    row.insertCell().textContent = "–";
  }
  if (agent_ms !== undefined) {
    row.dataset.agent = "1";
    row.cells[1].textContent = `${Math.round(agent_ms)} ms`;
  }
  if (browser_ms !== undefined) {
    row.dataset.browser = "1";
    row.cells[2].textContent = `${Math.round(browser_ms)} ms`;
  }
}

function onAgentEvent(message) {
  if (message.type === "tool") {
    if (message.phase === "started") toolsRunning.set(message.call_id, message.name);
    else toolsRunning.delete(message.call_id);
    const names = [...new Set(toolsRunning.values())];
    ui.tool.textContent = names.length ? `Running ${names.join(", ")}…` :
      message.outcome === "ok" ? "" : `${message.name}: ${message.outcome}`;
  } else if (message.type === "latency" && message.eos_to_first_audio_ms !== undefined) {
    addLatency({ agent_ms: message.eos_to_first_audio_ms });
  }
}

function onData(payload, topic) {
  if (topic !== EVENTS_TOPIC) return;
  try {
    onAgentEvent(JSON.parse(new TextDecoder().decode(payload)));
  } catch {
    // a message we do not understand is not worth breaking the page for
  }
}

// --- transcripts ----------------------------------------------------------------------

function onTranscription(reader, participantInfo) {
  return showTranscript(reader, participantInfo.identity === room?.localParticipant.identity);
}

async function showTranscript(reader, you) {
  const attrs = reader.info.attributes || {};
  const id = attrs["lk.segment_id"] || reader.info.id;
  const final = attrs["lk.transcription_final"] === "true";
  let li = segments.get(id);
  if (!li) {
    li = document.createElement("li");
    li.className = you ? "you" : "agent";
    li.innerHTML = `<span class="who">${you ? "You" : "Agent"}</span><span class="text"></span>`;
    ui.transcript.appendChild(li);
    segments.set(id, li);
  }
  li.classList.toggle("interim", !final);
  // an interim user transcript is a whole new stream; the agent's text arrives in pieces
  let text = "";
  for await (const chunk of reader) {
    text += chunk;
    li.querySelector(".text").textContent = text;
    ui.transcript.scrollTop = ui.transcript.scrollHeight;
  }
  // the agent's segments say they are final in the stream's trailer, read by now
  if (final || reader.info.attributes?.["lk.transcription_final"] === "true") {
    li.classList.remove("interim");
    if (you) lastUserFinalAt = performance.now();
  }
}

// --- microphone -----------------------------------------------------------------------

async function setMic(on) {
  if (!room || !micAllowed) return;
  try {
    await room.localParticipant.setMicrophoneEnabled(on);
  } catch (e) {
    showError(`The microphone could not be opened: ${e.message}`);
    return;
  }
  ui.mic.setAttribute("aria-pressed", String(on));
  ui.mic.textContent = on ? "Microphone on" : "Microphone off";
  ui.hold.classList.toggle("active", on && ui.ptt.checked);
}

function pushToTalk(enabled) {
  ui.hold.hidden = !enabled;
  ui.hold.disabled = !room || !micAllowed;
  ui.mic.disabled = enabled || !room || !micAllowed;
  setMic(!enabled);
}

ui.mic.addEventListener("click", () => setMic(ui.mic.getAttribute("aria-pressed") !== "true"));
ui.ptt.addEventListener("change", () => pushToTalk(ui.ptt.checked));
for (const [type, on] of [["pointerdown", true], ["pointerup", false], ["pointerleave", false]]) {
  ui.hold.addEventListener(type, () => ui.ptt.checked && setMic(on));
}
window.addEventListener("keydown", (e) => {
  if (e.code === "Space" && ui.ptt.checked && !e.repeat && e.target.tagName !== "INPUT") {
    e.preventDefault();
    setMic(true);
  }
});
window.addEventListener("keyup", (e) => {
  if (e.code === "Space" && ui.ptt.checked) setMic(false);
});

// --- connecting -----------------------------------------------------------------------

async function fetchToken() {
  const resp = await fetch("/api/token", { cache: "no-store" });
  if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
  return resp.json();
}

function wire(r) {
  r.on(RoomEvent.TrackSubscribed, (track) => {
    if (track.kind === Track.Kind.Audio) document.body.appendChild(track.attach());
  });
  r.on(RoomEvent.ParticipantAttributesChanged, (changed, participant) => {
    if ("lk.agent.state" in changed && participant !== r.localParticipant) {
      setAgentState(changed["lk.agent.state"]);
    }
  });
  r.on(RoomEvent.ParticipantConnected, (participant) => {
    if (participant.kind === ParticipantKind.AGENT) {
      setPhase("agent", `The agent joined room ${r.name}. Speak!`);
    }
  });
  r.on(RoomEvent.ParticipantDisconnected, (participant) => {
    if (participant.kind === ParticipantKind.AGENT) {
      setAgentState("offline");
      setPhase("connected", "The agent left the room.");
    }
  });
  r.on(RoomEvent.DataReceived, (payload, _participant, _kind, topic) => onData(payload, topic));
  r.on(RoomEvent.Disconnected, () => {
    if (room !== r) return; // a failed connect() reports itself
    setAgentState("offline");
    setPhase("disconnected", "Disconnected.");
    ui.connect.textContent = "Start talking";
    ui.mic.disabled = ui.hold.disabled = true;
    room = null;
  });
  r.registerTextStreamHandler(TRANSCRIPTION_TOPIC, onTranscription);
}

async function connect() {
  ui.error.hidden = true;
  ui.connect.disabled = true;
  setPhase("token", "Getting a token…");
  let info;
  try {
    info = await fetchToken();
  } catch (e) {
    showError(`Could not get a token from ${window.location.origin}/api/token (${e.message}). ` +
      "Is `voice-agent talk` still running?");
    ui.connect.disabled = false;
    return;
  }
  setPhase("connecting", `Connecting to LiveKit at ${info.url}…`);
  const r = new Room({ adaptiveStream: true, dynacast: true });
  wire(r);
  try {
    await r.connect(info.url, info.token, { maxRetries: 0, websocketTimeout: 10000 });
  } catch (e) {
    r.removeAllListeners();
    const mixed = window.location.protocol === "https:" && info.url.startsWith("ws://") ?
      " This page came over HTTPS, and browsers refuse unencrypted ws:// from such a page: " +
      "serve LiveKit over wss:// too (e.g. behind the same reverse proxy) and set LIVEKIT_URL." : "";
    showError(
      `Could not reach the LiveKit server at ${info.url} (${e.message || e}). ` +
      "Is it running (`livekit-server --dev`, or `docker compose up`)? " +
      "LIVEKIT_URL must be an address this browser can reach." + mixed,
    );
    ui.connect.disabled = false;
    return;
  }
  room = r;
  ui.connect.textContent = "Leave";
  ui.connect.disabled = false;
  const agentHere = [...r.remoteParticipants.values()].some((p) => p.kind === ParticipantKind.AGENT);
  setPhase(agentHere ? "agent" : "connected",
    agentHere ? `In room ${info.room} with the agent. Speak!` :
      `In room ${info.room}; waiting for the agent to join…`);
  ui.mic.disabled = !micAllowed || ui.ptt.checked;
  pushToTalk(ui.ptt.checked);
}

ui.connect.addEventListener("click", () => (room ? room.disconnect() : connect()));
// what the room's events drive, reachable from the devtools console (and the browser tests)
window.talkPage = { onData, setAgentState, showTranscript };
explainHttps();
setPhase("ready", ui.status.textContent);
