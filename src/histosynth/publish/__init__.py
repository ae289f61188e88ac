"""Publishing a dataset version: stamp, check, commit, push to the DVC remote, tag."""

from histosynth.publish.run import PublishResult, publish

__all__ = ["PublishResult", "publish"]
