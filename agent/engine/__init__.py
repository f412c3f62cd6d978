"""The never-silent turn engine: the tool-resolution pass, tools, the speaking pass, and what
a turn has said, its deadlines, the speech filter and its numbers."""
