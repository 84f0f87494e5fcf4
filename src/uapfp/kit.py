"""The kit: everything verification needs, as a folder of hashed files.

A kit is a folder of safetensors and JSON files with a ``manifest.json`` of their SHA-256
hashes; :meth:`Kit.load` refuses a kit whose files do not match. It holds the victim's UAP,
the probe images (all views), the encoder's weights, the victim's fingerprints and
embeddings, and the fingerprints and similarities of the calibration homologous models
(the null distribution; with leave-arch-out calibration also the encoders that score them,
in ``null-encoders.safetensors``), the query sets of the methods that learn nothing and of the
class-order check (:mod:`uapfp.classorder`) with the zoo's answers to them (``references.safetensors``),
plus the input spec, class count, hyperparameters and versions. :func:`uapfp.protect.protect` builds one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .calibration import get_calibration
from .config import ProtectConfig
from .encoder import FingerprintEncoder, build_encoder, embed
from .errors import ConfigError, KitIntegrityError
from .fingerprint import apply_output_mode
from .methods.base import Reference
from .sequential import verdict_level
from .signing import SIGNATURE_FILE, check_signature, signer_of
from .storage import load_tensors, read_json, save_tensors, sha256_file, write_json
from .suspects.base import OutputMode

KIT_FORMAT = "uapfp-kit/1"
KIT_FILES = ("kit.json", "uap.safetensors", "probes.safetensors", "encoder.safetensors", "reference.safetensors")
NULL_ENCODERS_FILE = "null-encoders.safetensors"  # only in kits whose calibration is leave-arch-out
REFERENCES_FILE = "references.safetensors"  # the queries and answers of the methods that learn nothing
OPTIONAL_FILES = (NULL_ENCODERS_FILE, REFERENCES_FILE)


@dataclass
class Kit:
    """A loaded (hash-checked) kit.

    ``info`` is ``kit.json`` but its ``config``, which is parsed once into ``config``.
    """

    path: Path | None
    info: dict[str, Any]
    config: ProtectConfig
    v: torch.Tensor
    probe_images: torch.Tensor
    encoder: FingerprintEncoder
    victim_fingerprints: torch.Tensor
    null_fingerprints: torch.Tensor
    sha256: str
    null_encoders: dict[str, FingerprintEncoder] = field(default_factory=dict)
    """Architecture -> the encoder trained without it (``leave-arch-out`` kits)."""
    signed_by: str | None = None
    """The key id whose signature was checked on load (None: not checked)."""
    references: dict[str, Reference] = field(default_factory=dict)
    """Query-set name -> the references of the methods that learn nothing (:mod:`uapfp.methods`)."""

    @property
    def identity(self) -> str:
        """The kit as evidence names it: its SHA-256 and who is proven to have signed it."""
        if self.signed_by:
            return f"{self.sha256} (signed by key {self.signed_by}, checked)"
        claimed = signer_of(self.path) if self.path is not None else None
        if claimed:
            return f"{self.sha256} (claims key {claimed}; not checked: pass --trusted-key)"
        return f"{self.sha256} (unsigned)"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.info["input_shape"]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        return int(self.info["num_classes"])

    @property
    def n_sets(self) -> int:
        return int(self.probe_images.shape[0])

    @property
    def null_archs(self) -> list[str]:
        """The architecture of each calibration model, in the order of ``null_fingerprints``."""
        return list(self.info.get("calibration_archs", []))

    def victim_embeddings(self, mode: OutputMode | str = "probs") -> torch.Tensor:
        return embed(self.encoder, apply_output_mode(self.victim_fingerprints, mode, self.num_classes))

    def similarities(
        self, f: torch.Tensor, mode: OutputMode | str, encoder: FingerprintEncoder | None = None
    ) -> torch.Tensor:
        """Similarities (..., S) of fingerprints (..., S, D) to the victim's on the first S probe
        sets, both truncated to answer mode ``mode``, scored by ``encoder`` (the kit's own by default)."""
        encoder = encoder or self.encoder
        n = f.shape[-2]
        ref = embed(encoder, apply_output_mode(self.victim_fingerprints[:n], mode, self.num_classes))
        return (embed(encoder, apply_output_mode(f, mode, self.num_classes)) * ref).sum(-1)

    def null_similarities(self, mode: OutputMode | str = "probs", n_sets: int | None = None) -> torch.Tensor:
        """Similarities (H, S) of the calibration models under the kit's own calibration."""
        return get_calibration(self.config.calibration).similarities(self, mode, n_sets or self.n_sets)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, trusted_key: str | os.PathLike[str] | None = None) -> Kit:
        """Load a kit, refusing it when any file differs from its manifest.

        With ``trusted_key`` (a PEM public key), also refuse it unless its manifest is signed
        by that key (:mod:`uapfp.signing`): a kit rewritten and rehashed is then refused too.
        """
        path = Path(path)
        manifest_path = path / "manifest.json"
        if not manifest_path.is_file():
            raise KitIntegrityError(
                f"{path} is not a kit (no manifest.json); make one with: uapfp protect --zoo ZOO --out {path}"
            )
        manifest_bytes = manifest_path.read_bytes()
        try:
            manifest = json.loads(manifest_bytes)
        except (ValueError, RecursionError):
            manifest = None
        files = manifest.get("files") if isinstance(manifest, dict) else None
        if (
            not isinstance(files, dict)
            or manifest.get("format") != KIT_FORMAT  # type: ignore[union-attr]
            or set(files) - set(OPTIONAL_FILES) != set(KIT_FILES)
            or not all(isinstance(v, str) for v in files.values())
        ):
            raise KitIntegrityError(
                f"{manifest_path} is not a {KIT_FORMAT} manifest; the kit is damaged, rebuild it with uapfp protect"
            )
        signed_by = check_signature(path, manifest_bytes, trusted_key) if trusted_key is not None else None
        for name, expected in files.items():
            f = path / name
            if not f.is_file():
                raise KitIntegrityError(
                    f"kit file {f} is missing; the kit is incomplete, rebuild it with uapfp protect"
                )
            if sha256_file(f) != expected:
                raise KitIntegrityError(
                    f"kit file {f} does not match its manifest (SHA-256 differs): the kit was modified "
                    "or damaged; use the original kit or rebuild it with uapfp protect"
                )
        try:
            return cls._read(path, files, hashlib.sha256(manifest_bytes).hexdigest(), signed_by)
        except (ConfigError, KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
            raise KitIntegrityError(
                f"{path} is damaged or was made by another version of uapfp ({exc}); rebuild it with uapfp protect"
            ) from None

    @classmethod
    def _read(cls, path: Path, files: dict[str, str], sha256: str, signed_by: str | None) -> Kit:
        """The kit's contents, its files already checked against the manifest."""
        info = read_json(path / "kit.json")
        if not isinstance(info, dict) or not isinstance(info.get("config"), dict):
            raise ConfigError("kit.json holds no settings")
        raw_config = dict(info.pop("config"))
        raw_config.setdefault("calibration", "kit")  # kits made before the field existed
        raw_config.setdefault("method", "uap")  # kits made before the methods registry: the paper's
        config = ProtectConfig.from_dict(raw_config)
        if config.calibration == "auto" or config.method == "auto":
            raise ConfigError("a kit's calibration and method are decided when it is built")
        ref = load_tensors(path / "reference.safetensors")
        in_dim = int(ref["victim_fingerprints"].shape[-1])
        encoder = build_encoder(config.encoder, in_dim)
        encoder.load_state_dict(load_tensors(path / "encoder.safetensors"))
        encoder.eval()
        references = {}
        if REFERENCES_FILE in files:
            state = load_tensors(path / REFERENCES_FILE)
            references = {key: Reference.from_tensors(state, key) for key in sorted({k.split("/")[0] for k in state})}
        null_encoders: dict[str, FingerprintEncoder] = {}
        if NULL_ENCODERS_FILE in files:
            state = load_tensors(path / NULL_ENCODERS_FILE)
            # keys are "ARCH/PARAM": parameter names hold no "/", an architecture name may
            for arch in sorted({key.rpartition("/")[0] for key in state}):
                sub = build_encoder(config.encoder, in_dim)
                sub.load_state_dict({k.rpartition("/")[2]: t for k, t in state.items() if k.rpartition("/")[0] == arch})
                null_encoders[arch] = sub.eval()
        return cls(
            path=path,
            info=info,
            config=config,
            v=load_tensors(path / "uap.safetensors")["v"],
            probe_images=load_tensors(path / "probes.safetensors")["images"],
            encoder=encoder,
            victim_fingerprints=ref["victim_fingerprints"],
            null_fingerprints=ref["null_fingerprints"],
            sha256=sha256,
            null_encoders=null_encoders,
            signed_by=signed_by,
            references=references,
        )

    def save(self, path: str | os.PathLike[str]) -> Kit:
        """Write the kit's files and its manifest (each atomically; the manifest last)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        hashes = {
            "uap.safetensors": save_tensors(path / "uap.safetensors", {"v": self.v}),
            "probes.safetensors": save_tensors(path / "probes.safetensors", {"images": self.probe_images}),
            "encoder.safetensors": save_tensors(path / "encoder.safetensors", self.encoder.state_dict()),
            "reference.safetensors": save_tensors(
                path / "reference.safetensors",
                {
                    "victim_fingerprints": self.victim_fingerprints,
                    "victim_embeddings": self.victim_embeddings("probs"),
                    "null_fingerprints": self.null_fingerprints,
                    "null_similarities": self.null_similarities("probs"),
                },
            ),
        }
        if self.null_encoders:
            hashes[NULL_ENCODERS_FILE] = save_tensors(
                path / NULL_ENCODERS_FILE,
                {f"{arch}/{k}": t for arch, enc in self.null_encoders.items() for k, t in enc.state_dict().items()},
            )
        elif (path / NULL_ENCODERS_FILE).exists():  # left by an earlier kit in the same folder
            (path / NULL_ENCODERS_FILE).unlink()
        if self.references:
            hashes[REFERENCES_FILE] = save_tensors(
                path / REFERENCES_FILE,
                {k: t for key, ref in self.references.items() for k, t in ref.tensors(key).items()},
            )
        elif (path / REFERENCES_FILE).exists():
            (path / REFERENCES_FILE).unlink()
        (path / SIGNATURE_FILE).unlink(missing_ok=True)  # a signature of an earlier kit in the same folder
        write_json(path / "kit.json", {**self.info, "config": self.config.to_dict()})
        hashes["kit.json"] = sha256_file(path / "kit.json")
        write_json(
            path / "manifest.json",
            {"format": KIT_FORMAT, "files": {k: hashes[k] for k in (*KIT_FILES, *OPTIONAL_FILES) if k in hashes}},
        )
        self.path = path
        self.sha256 = sha256_file(path / "manifest.json")
        return self

    def describe(self) -> dict[str, Any]:
        """What a verdict's evidence says of the kit: its identity, victim, data, zoo and settings."""
        m = self.info["models"]
        return {
            "sha256": self.sha256, "signed_by": self.signed_by, "victim": self.info["victim"],
            "dataset": self.info.get("dataset"), "created": self.info.get("created"),
            "zoo_summary": f"{self.info.get('zoo')}: {len(m['train'])} models train the encoder, "
            f"{len(m['calibration'])} calibrate the test, {len(m['heldout'])} held out, "
            f"{len(self.info.get('siblings', []))} siblings",
            "method": self.config.method, "alpha": self.config.alpha, "test": self.config.null,
            "calibration": self.config.calibration, "uap": self.info.get("uap"), "versions": self.info.get("versions"),
        }  # fmt: skip

    def summary(self) -> str:
        """A few lines describing the kit."""
        u = self.info["uap"]
        m = self.info["models"]
        return (
            f"kit {self.path}, sha256 {self.identity}\n"
            f"  victim {self.info['victim']['id']} ({self.info['victim']['arch']}), {self.num_classes} classes, "
            f"input {self.input_shape}\n"
            f"  UAP {u['method']} {u['norm']} xi={u['xi']}: fooling rate {u['fooling_rate_val']} on held-out data\n"
            f"  {self.n_sets} probe sets of {self.probe_images.shape[1]} points; encoder trained on "
            f"{len(m['train'])} models, null from {len(m['calibration'])} homologous models (mean similarity "
            f"{self.info['null']['mean']}, calibration {self.config.calibration})\n"
            f"  verdicts by method {self.config.method} at alpha {self.config.alpha} (verify --method to choose "
            "another)" + _floor_line(self.info.get("p_floor"), self.config)
        )


def _floor_line(floor: Any, config: Any) -> str:
    """The summary's line on what an exact copy gets (a kit made before it was recorded says nothing)."""
    if not isinstance(floor, dict) or not all(type(floor.get(m)) is float and math.isfinite(floor[m])
                                              for m in ("probs", "label")):  # fmt: skip
        return ""
    level = verdict_level(config.alpha, config.fingerprints, sequential=config.sequential)
    said = ", ".join(f"{floor[m]:.3g} with {m}" + (f" (not below {level:.4g}: no copy can be shown)" if floor[m] >= level
                                                   else "") for m in ("probs", "label"))  # fmt: skip
    return (f"\n  a suspect answering exactly as the victim gets p {said} ({config.method}, all "
            f"{config.fingerprints} sets)")  # fmt: skip
