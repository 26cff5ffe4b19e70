"""Run bookkeeping shared by the apps: config tree and hyperparameters of a run
(:mod:`.run_records`), DDP / multirun launching (:mod:`.ddp`) and progress bars
(:mod:`.progress`)."""
