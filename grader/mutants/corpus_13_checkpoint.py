"""Mistakes learners make in 13 checkpoint."""

from . import Mutant

ATOMIC_WRITE = '''    try:
        with open(tmp, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename makes it the checkpoint
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
'''
CONFIG_CHECK = '''        saved = checkpoint["config"]
        for field in dataclasses.fields(model.config):
            if field.name == "dropout":  # not part of the weights: a run may resume with another
                continue
            ours = getattr(model.config, field.name)
            theirs = saved.get(field.name)
            if theirs != ours:
                raise ValueError(
                    f"The checkpoint {path} was saved with {field.name}={theirs!r}, but the model has "
                    f"{field.name}={ours!r}: build the model from the checkpoint's config (only dropout may differ)."
                )
'''
RNG_SAVE = '''        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        },
'''
RNG_LOAD = '''    rng = checkpoint["rng"]
    torch.set_rng_state(rng["torch"].cpu())
    if rng.get("cuda") is not None and torch.cuda.is_available():
        states = [state.cpu() for state in rng["cuda"]][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(states)
'''

MUTANTS = [
    Mutant(
        "13-optimizer-not-saved", "checkpoint",
        "save_checkpoint saves the model but not the optimizer (load skips what is not there), so AdamW's moments "
        "start again from zero after a resume.",
        (('        "optimizer": optimizer.state_dict(),\n', '        "optimizer": None,\n'),
         ("    if optimizer is not None:\n", '    if optimizer is not None and checkpoint["optimizer"] is not None:\n')),
        ("optimizer", "not saved"),
    ),
    Mutant(
        "13-optimizer-not-loaded", "checkpoint",
        "load_checkpoint loads the model and forgets optimizer.load_state_dict.",
        (('    if optimizer is not None:\n        optimizer.load_state_dict(checkpoint["optimizer"])\n', ""),),
        ("did not load the optimizer",),
    ),
    Mutant(
        "13-model-not-loaded", "checkpoint",
        "load_checkpoint strips the prefixes into a new dict and forgets model.load_state_dict.",
        (("        model.load_state_dict(state)\n", ""),),
        ("did not load the model",),
    ),
    Mutant(
        "13-step-off-by-one", "checkpoint",
        "save_checkpoint stores step + 1 ('the next step'), so the resumed run skips a step of the schedule.",
        (('        "step": step,\n', '        "step": step + 1,\n'),),
        ("off by one",),
    ),
    Mutant(
        "13-rng-not-saved", "checkpoint",
        "save_checkpoint leaves the RNG out (load restores it only when present), so dropout draws other masks "
        "after a resume.",
        ((RNG_SAVE, ""),
         ('    rng = checkpoint["rng"]\n', '    rng = checkpoint.get("rng") or {"torch": torch.get_rng_state()}\n')),
        ("RNG", "not saved"),
    ),
    Mutant(
        "13-rng-seed-not-state", "checkpoint",
        "save_checkpoint stores torch.initial_seed() and load_checkpoint seeds with it, which starts the random "
        "numbers over instead of continuing them.",
        (('            "torch": torch.get_rng_state(),\n', '            "torch": torch.initial_seed(),\n'),
         ('    torch.set_rng_state(rng["torch"].cpu())\n', '    torch.manual_seed(rng["torch"])\n')),
        ("seed",),
    ),
    Mutant(
        "13-rng-not-restored", "checkpoint",
        "load_checkpoint never puts the saved RNG state back.",
        ((RNG_LOAD, ""),),
        ("did not restore", "RNG"),
    ),
    Mutant(
        "13-extra-not-saved", "checkpoint",
        "save_checkpoint drops extra, so the batch generator's state is lost.",
        (('        "extra": extra,\n', '        "extra": None,\n'),),
        ("generator", "lost"),
    ),
    Mutant(
        "13-written-in-place", "checkpoint",
        "save_checkpoint torch.saves straight onto path, so a crash while writing destroys the previous checkpoint.",
        ((ATOMIC_WRITE, "    torch.save(checkpoint, path)\n"),),
        ("written in place",),
        also=(("not written atomically",),),
    ),
    Mutant(
        "13-temporary-file-left-behind", "checkpoint",
        "save_checkpoint writes a temporary file and renames it, but leaves it behind when the write fails.",
        ((ATOMIC_WRITE, '''    with open(tmp, "wb") as f:
        torch.save(checkpoint, f)
    os.replace(tmp, path)
'''),),
        ("temporary file", "left behind"),
    ),
    Mutant(
        "13-temporary-file-elsewhere", "checkpoint",
        "save_checkpoint writes its temporary file into the system's temporary folder, which may be another file "
        "system, where os.replace fails.",
        (("import os\n", "import os\nimport tempfile\n"),
         ('    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")\n',
          '    tmp = Path(tempfile.gettempdir()) / f"{path.name}.{os.getpid()}.tmp"\n')),
        ("not in the checkpoint's folder",),
    ),
    Mutant(
        "13-orig-mod-not-stripped", "checkpoint",
        "load_checkpoint strips DDP's module. but not torch.compile's _orig_mod., so a compiled model's checkpoint "
        "does not load into a plain model.",
        (('WRAPPER_PREFIXES = ("_orig_mod.", "module.")', 'WRAPPER_PREFIXES = ("module.",)'),),
        ("_orig_mod.", "not stripped"),
    ),
    Mutant(
        "13-module-not-stripped", "checkpoint",
        "load_checkpoint strips torch.compile's _orig_mod. but not DDP's module.",
        (('WRAPPER_PREFIXES = ("_orig_mod.", "module.")', 'WRAPPER_PREFIXES = ("_orig_mod.",)'),),
        ("module.", "not stripped"),
    ),
    Mutant(
        "13-one-prefix-stripped", "checkpoint",
        "load_checkpoint strips one prefix per key, so 'module._orig_mod.' (a compiled model in DDP) keeps one.",
        (("            while key.startswith(WRAPPER_PREFIXES):\n", "            if key.startswith(WRAPPER_PREFIXES):\n"),),
        ("only one prefix",),
    ),
    Mutant(
        "13-no-config-check", "checkpoint",
        "load_checkpoint never compares the configs and relies on load_state_dict, which misses a config with the "
        "same shapes (another norm_eps, tied or not).",
        ((CONFIG_CHECK, ""),),
        ("another config",),
    ),
    Mutant(
        "13-config-check-includes-dropout", "checkpoint",
        "load_checkpoint compares every field, dropout too, so a run cannot resume with another dropout.",
        (('            if field.name == "dropout":  # not part of the weights: a run may resume with another\n'
          "                continue\n", ""),),
        ("only in dropout",),
    ),
    Mutant(
        "13-config-error-names-no-field", "checkpoint",
        "load_checkpoint compares the two configs as dicts and raises ValueError without saying which field differs.",
        ((CONFIG_CHECK, '''        ours = {k: v for k, v in dataclasses.asdict(model.config).items() if k != "dropout"}
        theirs = {k: v for k, v in checkpoint["config"].items() if k != "dropout"}
        if ours != theirs:
            raise ValueError("The checkpoint was saved for another model.")
'''),),
        ("does not name the first differing field",),
    ),
    Mutant(
        "13-config-error-names-last-field", "checkpoint",
        "load_checkpoint walks the fields from the last one, so its error names the last field that differs.",
        (("        for field in dataclasses.fields(model.config):\n",
          "        for field in reversed(dataclasses.fields(model.config)):\n"),),
        ("does not name the first differing field",),
    ),
    Mutant(
        "13-config-check-asserts", "checkpoint",
        "load_checkpoint checks the config with assert, raising AssertionError instead of ValueError.",
        (('''            if theirs != ours:
                raise ValueError(
''', '''            assert theirs == ours, (
'''),),
        ("raised assertionerror",),
    ),
    Mutant(
        "13-config-saved-as-object", "checkpoint",
        "save_checkpoint stores the GPTConfig object itself, which a weights_only load refuses.",
        (('        "config": dataclasses.asdict(config),\n', '        "config": config,\n'),),
        ("config", "not as a dict"),
    ),
    Mutant(
        "13-loads-any-pickle", "checkpoint",
        "load_checkpoint loads with weights_only=False (to silence an error), so a checkpoint can run code.",
        (("    checkpoint = torch.load(path, map_location=map_location, weights_only=True)\n",
          "    checkpoint = torch.load(path, map_location=map_location, weights_only=False)\n"),),
        ("weights_only",),
    ),
]
