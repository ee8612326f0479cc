"""TopK sparse autoencoders on a layer's residual stream (the SAE-latent granularity).

    collect_residual(model, batches, layer) -> acts [n_tokens, d_model]
    train_sae(acts, layer, n_latents, k, ...) -> (TopKSAE, metrics)
    save_sae(sae, dir) / load_sae(dir, layer=None) / check_sae_fits(sae, model)

Built on EleutherAI's sparsify (SparseCoder, its losses, optimizer and file format), so
published sparsify SAEs (one `layers.N/` folder per layer) load the same way as ours.
"""

from ipg.sae.collect import collect_residual, decoder_layers
from ipg.sae.io import check_sae_fits, load_sae, save_sae
from ipg.sae.model import TopKSAE
from ipg.sae.train import default_lr, evaluate_sae, train_sae

__all__ = [
    "TopKSAE",
    "check_sae_fits",
    "collect_residual",
    "decoder_layers",
    "default_lr",
    "evaluate_sae",
    "load_sae",
    "save_sae",
    "train_sae",
]
