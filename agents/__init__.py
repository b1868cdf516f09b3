"""The rules of each closed loop (CONTRACT.md §4), as pure functions over keyed state."""
