"""Every use of a library's private or internal API, one module per library, each with why it is
needed; ``tests/test_compat.py`` fails loudly on a library version where one of them no longer
holds. The modules import their library on first use, so importing one costs nothing else.

- ``compat.keras``: the optimizer's variable keys and weight-EMA slots, the EfficientNet builder;
- ``compat.mlflow``: the registry's alias rules, the pyfunc type-hint check;
- ``compat.optuna``: Hydra's Optuna sweeper implementation and Optuna's storage tables;
- ``compat.tensorflow``: the graph profiler's FLOP count (the benchmarks').
"""
