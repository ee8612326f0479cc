"""The study's computations on files and models: trajectories, steering evaluation, statistics.

    trajectories      sample G chains of thought per prompt and score them (the attribution input)
    steering          steering evaluation on held-out prompts (docs/method.md, "Evaluation")
    steering_summary  summaries of steering rows and unit selections, without a model
    statistics        bootstrap confidence intervals, paired differences, Jaccard overlap
    reliability       retest reliability of an attribution from its per-prompt scores
    sensitivity       IPG under each estimator variant compared with the base run
    cross_task        overlap of the units selected on different tasks
    provenance        what produced an output (versions, config hash, seeds)
"""
