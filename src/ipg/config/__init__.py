"""The study's configuration, checked before any job runs.

    schema  the config schema's mechanics: load, normalise, word its errors, steering defaults
    study   validate_config / load_config, name checks, and the params of each job for the rules
    checks  deep checks at DAG-build time: nested entries and cross-constraints
    jobs    the typed params each job receives (sampling, steering, sensitivity variants)
"""
