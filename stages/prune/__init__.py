"""prune stage: structured channel pruning (torch-pruning), NNCF sparsity, EDGY configs, JMMC joint pruning."""
