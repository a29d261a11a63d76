"""The training and evaluation tasks: pretrain, finetune, evaluate, transcribe, demo."""
