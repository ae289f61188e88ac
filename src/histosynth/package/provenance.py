"""Where the real images of a package come from, under which licence, and how to cite them.

Taken from the source actually used (``data.source``), never from a default that may belong to
another source: the demo tiles describe themselves, a MedMNIST set gives its own description
and licence (``medmnist.INFO``), and a ``folder:`` source has only what the user wrote in
``package.source_description`` / ``source_licence`` / ``source_citation``. What is not known is
said to be unknown, and logged as a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from histosynth.config import Params

log = logging.getLogger(__name__)

UNKNOWN = "unknown"

IHC_DESCRIPTION = (
    "Tiles of the immunohistochemistry image that ships with scikit-image "
    "(skimage.data.immunohistochemistry): human colonic glands, FHL2 protein revealed with DAB, "
    "hematoxylin counterstain; acquired at the Center for Microscopy And Molecular Imaging (CMMI).")
IHC_LICENCE = "No known copyright restrictions (as scikit-image lists the image)."
SCIKIT_IMAGE_CITATION = (
    "van der Walt, S., Schönberger, J. L., Nunez-Iglesias, J., Boulogne, F., Warner, J. D., Yager, N., "
    "Gouillart, E., Yu, T. and the scikit-image contributors. scikit-image: image processing in Python. "
    "PeerJ 2, e453 (2014). https://doi.org/10.7717/peerj.453")
MEDMNIST_CITATION = (
    "Yang, J., Shi, R., Wei, D., Liu, Z., Zhao, L., Ke, B., Pfister, H. and Ni, B. MedMNIST v2 - A large-scale "
    "lightweight benchmark for 2D and 3D biomedical image classification. Scientific Data 10, 41 (2023). "
    "MedMNIST also asks to cite the source data set its description names.")


@dataclass(frozen=True)
class Provenance:
    description: str
    licence: str
    citation: str
    unknown: tuple[str, ...] = ()  # which of the three the user has not given (folder: sources)


def _medmnist(flag: str) -> Provenance:
    import medmnist  # imports torch: only for this source

    info = medmnist.INFO.get(flag.strip().lower(), {})
    licence = info.get("license")
    return Provenance(
        description=f"MedMNIST v2 {flag} (medmnist.com): {info.get('description', 'no description found')}",
        licence=f"{licence} (as medmnist.INFO gives it for {flag})" if licence else UNKNOWN,
        citation=MEDMNIST_CITATION,
        unknown=() if licence else ("licence",))


def _folder(params: Params) -> Provenance:
    given = {"description": params.package.source_description.strip(),
             "licence": params.package.source_licence.strip(),
             "citation": params.package.source_citation.strip()}
    unknown = tuple(key for key, value in given.items() if not value)
    if unknown:
        keys = ", ".join(f"package.source_{key}" for key in unknown)
        log.warning("data.source is a folder (%s) and %s not set: the dataset card says the real images' %s "
                    "%s unknown; set %s in params.yaml", params.data.source_arg, keys, " and ".join(unknown),
                    "is" if len(unknown) == 1 else "are", keys)
    return Provenance(
        description=given["description"] or "Images from a local folder; who made them and how is unknown "
                                            "(package.source_description is not set).",
        licence=given["licence"] or "Unknown: package.source_licence is not set. Do not redistribute these "
                                    "images before their licence is known.",
        citation=given["citation"] or "unknown (package.source_citation is not set)",
        unknown=unknown)


def public_source(params: Params) -> str:
    """``data.source`` as the card shows it: a folder source without its path (the folders on the
    way often name a person, a patient or a slide); the image paths inside it are the ``origin``."""
    if params.data.source_kind == "folder":
        return "folder:<a local folder; its path is not recorded>"
    return params.data.source


def source_provenance(params: Params) -> Provenance:
    """The provenance of ``params.data.source`` (see the module docstring)."""
    kind, arg = params.data.source_kind, params.data.source_arg
    if kind == "builtin":
        return Provenance(IHC_DESCRIPTION, IHC_LICENCE, SCIKIT_IMAGE_CITATION)
    if kind == "medmnist":
        return _medmnist(arg)
    return _folder(params)
