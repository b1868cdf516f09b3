"""The imperative shell: clock, deadline index, de-duplication, the embedded driver, the CLI."""
