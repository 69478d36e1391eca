"""Process helpers every stage uses: logging, defaults, fork-safe locks, deadlines, signals."""
