"""One module per hash method; each defines a :class:`~speechret.hashing.method.HashMethod`
subclass, registered under its ``name`` when the module is imported (every module here is
imported on the first lookup by name, :func:`speechret.hashing.method.get_hash_method`)."""
