"""Benchmarks of the study's engines (`ipg bench attribution`): ratios measured side by side.

    from ipg.bench.attribution import run_bench
    table = run_bench(["random-qwen2-medium"], csv_path="reports/bench/attribution.csv",
                      png_path="reports/bench/attribution.png")

Modules: workload (models, synthetic trajectories, the plain forward + backward reference,
interleaved timing), naive (per-token IPG loop), captum_ref (LayerIntegratedGradients),
memory (peak RSS in a fresh process), attribution (the benches), plot (the figure).
"""
