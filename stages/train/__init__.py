"""train stage: the enhancer, the denoiser and YuNet (through mmdet), exported and evaluated."""
