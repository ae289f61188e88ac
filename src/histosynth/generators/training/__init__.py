"""The training tools every generator family shares: the run (resume, checkpoints, NaN stop,
monitoring, record), the torch runtime, seeds, training data, the real-vs-fake probe, checkpoint
files, the weights' moving average and the settings base. The families (``gan/``, ``diffusion/``)
import from here; nothing here imports a family."""
