"""The model-facing core: a model's units and what is done to them.

    units         granularities (neurons, heads, layers, SAE latents): where a unit's activation
                  lives, its id, how to read, replace and scale it (hooks of docs/method.md, Eq. 4)
    intervention  steer(model, units, gamma): the control of Eq. 4; unit means for mean ablation
    sampling      batched sampling of G trajectories per prompt with the KV cache
    rewards       outcome rewards R(tau) of a trajectory (accuracy, length)
    devices       which torch device the models and SAEs run on
    checkpoint    chunked progress next to an output, so a killed run resumes
"""
