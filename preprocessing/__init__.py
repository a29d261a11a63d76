"""Raw video -> 96x96 mouth ROI at 25 fps, 16 kHz audio and MuAViC manifests."""
