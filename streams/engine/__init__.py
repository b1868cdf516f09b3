"""The engine: topology, clock, deadlines, de-duplication, stage runners, the embedded driver."""
