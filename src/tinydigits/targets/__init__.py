"""Where the generated C runs: one small module per toolchain family, each with require(), build(), run()."""
