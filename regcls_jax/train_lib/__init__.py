"""The training library every experiment family shares.

``step`` (state, optimiser, the pure train step), ``scan_loop`` (epochs as ``lax.scan`` inside
one compiled program), ``checkpoint`` and ``pytrees`` (Orbax checkpoints of named arrays),
``sharding`` (meshes, the vmapped models program, device batches), ``workdir`` (checks,
config.json, fingerprints), ``progress`` (ETA lines), ``guards`` (preemption, non-finite losses),
``metric_writers`` (CSV, metrics.jsonl, TensorBoard), ``config`` (loading config files) and
``runtime`` (process-level JAX set-up).
"""
