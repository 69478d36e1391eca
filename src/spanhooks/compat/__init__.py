"""Drop-in homes for the five seed systems: each seed's names at one path, with its semantics."""
