"""minildm: Latent Diffusion Models (Rombach et al., CVPR 2022, arXiv 2112.10752) built from scratch.

Table of contents: each module is one concept, taught by one notebook, from one section of the paper.

====================  ==============================  ==========================================================
module                notebook                        paper
====================  ==============================  ==========================================================
``config``            all (first cell)                run modes smoke / cpu / gpu (COURSE.md)
``schedule``          01_forward_diffusion            DDPM §2 Eq. 2, 4, 6–7; LDM App. B (β schedules)
``data``              01–05                           MNIST (online, or offline through PyPI)
``celeba``            06_celeba                       CelebA layout reader (LDM §4, App. E.2)
``toyfaces``          06_celeba                       procedural stand-in for CelebA, same on-disk format
``faces``             06                              face data (CelebA or toy), attribute editing, localisation, the run
``face_classifier``   06                              attribute classifier: judge of samples, perceptual features
``viz``               all                             grids, strips, curves
``unet``              02_pixel_ddpm                   the time-conditional UNet ε_θ(x_t, t) (LDM §3.3, App. E)
``attention``         02, 05                          softmax(QKᵀ/√d)·V, self/cross-attention, SpatialTransformer (§3.3)
``attention_maps``    05, 06                          capture_attention: maps per token, layer, step; region share
``text``              05                              word-level tokenizer for prompts (<pad>, <unk>, <null>)
``captions``          05                              MNIST captions from measured thickness, slant, size
``conditioning``      05, 06                          τ_θ: Class-, Text-, AttributeEncoder; ConditionalUNet (§3.3, Eq. 3)
``guidance``          05, 06                          classifier-free guidance: condition dropout, guided ε (LDM §4.3)
``objective``         02, 04                          L_DM (LDM Eq. 1) and L_LDM (Eq. 2)
``samplers``          02                              DDPM ancestral (DDPM Alg. 2), DDIM (DDIM Eq. 12)
``ldm``               04_latent_diffusion             latent diffusion: encode once, sample in z, decode (LDM §3.2, Eq. 2)
``cost``              04                              training images/s and seconds per sample, measured (LDM §4.1)
``presets``           02–06                           every training job's size, per run mode, in one place
``distributions``     03_autoencoder_kl               the diagonal Gaussian posterior q(z|x), its KL (LDM §3.1)
``autoencoder``       03, 04                          the KL-regularised autoencoder ℰ/𝒟, scale factor (LDM §3.1, App. G)
``losses``            03                              L1, perceptual, PatchGAN hinge, adaptive λ (LDM App. G, Eq. 25)
``classifier``        03–05                           the course's MNIST classifier (perceptual features, evaluation)
``evaluate``          03–05                           PSNR, SSIM, accuracy, Fréchet distance with its real-vs-real floor
``train``             02–06                           training loops: AdamW, EMA, atomic checkpoints, exact resume
``checkpoint``        02–06                           versioned checkpoints that carry their config
``exercises``         all (last cells)                answer checks for the exercises
``__main__``          —                               the command line: demo, train, sample, export, notebook
====================  ==============================  ==========================================================
"""
__version__ = "0.1.0"
