"""How the kata gets its data: Tiny Shakespeare (downloaded once, hash-checked, or a local copy) and a synthetic corpus it generates."""
