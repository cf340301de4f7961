"""The live loop: runner, state, risk gate, journal, callbacks, hosted policies."""
