"""The processor: the program a VideoJob's Pod runs to turn one source video into its outputs."""
