"""Training the learned networks on Eulerian-dataset-style clips (see :mod:`.data` for the layout).

- :mod:`.train_flow`: G_flow (text-conditioned) or the direction-hint network.
- :mod:`.train_frame`: G_frame.

Both follow the release's recipe (pix2pixHD GAN + feature matching, EPE or
L1 + VGG, Adam 2e-4, 100 + 100 epochs) and write ``latest_net_G.safetensors``,
which the nodes load from ``models/text2cinemagraph``.
"""
