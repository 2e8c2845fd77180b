"""A versioned corpus of trajectories, stored with tensorflow-datasets as array_record.

No TensorFlow is needed: `tfds.core.GeneratorBasedBuilder` encodes examples
with numpy and writes ArrayRecord files (`file_format="array_record"`), and
`tfds.data_source` / `builder.as_data_source` read them back as random-access
sources of dicts of numpy arrays. TFRecord would need TensorFlow; we avoid it.

Layout: `<data_dir>/optformer_corpus/<config name>/<VERSION>/` holds
`optformer_corpus-{train,validation}.array_record-*`, `dataset_info.json`,
`features.json` and `metadata.json` (the `CorpusConfig`). Examples are in
generation order (shuffling disabled): record i of a split is task i.

The config name hashes the `CorpusConfig`, not the code: bump VERSION
whenever the generator's output for a given config changes, so that a
rebuild does not silently reuse older files.

Features per trajectory (T = num_trials, D = prior.max_dims): see
`FEATURES_DOC`. Splits: `train` and `validation`, with disjoint task seeds
(`prior.task_seeds`: seed * 2**32 + index for train, + 2**31 for validation).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds

from optformer.data_gen import behaviour
from optformer.data_gen.behaviour import BehaviourConfig, GenerationStats
from optformer.data_gen.prior import PriorConfig

FEATURES_DOC = {
    "x": "float32 [T, D]: configurations in unit form (float in [0,1]; int level i of n = i/(n-1); categorical index k as float k; unused slots 0).",
    "y": "float32 [T]: noisy observed objective, to MAXIMIZE.",
    "f": "float32 [T]: noiseless objective at x.",
    "z": "float32 [T, D]: latent GP inputs of x (warped unit values / category positions; unused 0).",
    "kinds": "int32 [D]: 0 unused, 1 float, 2 int (ordered, finite), 3 categorical.",
    "num_values": "int32 [D]: levels (int) or categories (categorical), 0 otherwise.",
    "num_dims": "int32: number of used slots (the first num_dims).",
    "algorithm": "int32: index into data_gen.ALGORITHMS of the behaviour algorithm.",
    "lengthscale": "float32 [D]: Matern-3/2 lengthscales on z; irrelevant and unused slots = 1e6.",
    "outputscale": "float32: kernel variance.",
    "noise_variance": "float32: variance of y - f.",
    "task_seed": "int64: seed of the task (data_gen.prior.task_seeds).",
}


@dataclasses.dataclass(frozen=True)
class CorpusConfig:
  """What a corpus contains; saved as metadata.json next to the records."""

  prior: PriorConfig = PriorConfig()  # Task distribution.
  behaviour: BehaviourConfig = BehaviourConfig()  # Behaviour algorithm settings.
  num_train: int = 100_000  # Trajectories in the train split.
  num_validation: int = 1_000  # Trajectories in the validation split.
  num_trials: int = 64  # T: trials per trajectory.
  algorithm_mix: tuple[float, ...] = (0.25, 0.25, 0.5)  # Weights of ALGORITHMS.
  seed: int = 0  # Global seed (task seeds derive from it).
  chunk_size: int = 1024  # Trajectories generated per call to `generate`.

  @classmethod
  def tiny(cls) -> "CorpusConfig":
    return cls(prior=PriorConfig.tiny(), behaviour=BehaviourConfig.tiny(), num_train=24,
               num_validation=8, num_trials=8, algorithm_mix=(1.0, 1.0, 1.0), chunk_size=16)

  def to_json(self) -> dict:
    d = dataclasses.asdict(self)
    d["prior"] = self.prior.to_json()
    d["algorithms"] = list(behaviour.ALGORITHMS)
    return d

  @classmethod
  def from_json(cls, d: dict) -> "CorpusConfig":
    d = dict(d)
    d.pop("algorithms", None)
    tup = lambda v: tuple(v) if isinstance(v, list) else v
    return cls(prior=PriorConfig(**{k: tup(v) for k, v in d.pop("prior").items()}),
               behaviour=BehaviourConfig(**{k: tup(v) for k, v in d.pop("behaviour").items()}),
               **{k: tup(v) for k, v in d.items()})

  @property
  def name(self) -> str:
    """Builder config name: readable sizes plus a hash of the full config."""
    digest = hashlib.sha1(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:8]
    return f"d{self.prior.max_dims}_t{self.num_trials}_seed{self.seed}_{digest}"


class OptformerCorpus(tfds.core.GeneratorBasedBuilder):
  """Trajectories of behaviour algorithms on GP-prior tasks (see module docstring)."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {
      "1.0.0": "HEBO+-style GP prior with mixed kinds; random, sobol, gp_ucb.",
      "1.1.0": "Task sampler draws its randomness in 4 blocks: other tasks per seed than 1.0.0.",
  }

  # tfds looks up the source file to find download checksums, which needs the
  # `importlib_resources` backport for builders defined in a package. This
  # builder downloads nothing, so it has no code path to look up.
  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls):
    return None

  def __init__(self, *, corpus_config: CorpusConfig = CorpusConfig(), progress: bool = False,
               **kwargs):
    """Args: corpus_config; progress: show a tqdm bar per split; kwargs go to tfds
    (data_dir, file_format="array_record", ...)."""
    self.corpus_config = corpus_config
    self.progress = progress
    self.stats = {"train": GenerationStats(), "validation": GenerationStats()}
    kwargs.setdefault("file_format", "array_record")
    kwargs.setdefault("config", tfds.core.BuilderConfig(
        name=corpus_config.name, description=json.dumps(corpus_config.to_json(), sort_keys=True)))
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    c = self.corpus_config
    t, d = c.num_trials, c.prior.max_dims
    f32, i32 = np.float32, np.int32
    features = tfds.features.FeaturesDict({
        "x": tfds.features.Tensor(shape=(t, d), dtype=f32, doc=FEATURES_DOC["x"]),
        "y": tfds.features.Tensor(shape=(t,), dtype=f32, doc=FEATURES_DOC["y"]),
        "f": tfds.features.Tensor(shape=(t,), dtype=f32, doc=FEATURES_DOC["f"]),
        "z": tfds.features.Tensor(shape=(t, d), dtype=f32, doc=FEATURES_DOC["z"]),
        "kinds": tfds.features.Tensor(shape=(d,), dtype=i32, doc=FEATURES_DOC["kinds"]),
        "num_values": tfds.features.Tensor(shape=(d,), dtype=i32, doc=FEATURES_DOC["num_values"]),
        "num_dims": tfds.features.Scalar(dtype=i32, doc=FEATURES_DOC["num_dims"]),
        "algorithm": tfds.features.Scalar(dtype=i32, doc=FEATURES_DOC["algorithm"]),
        "lengthscale": tfds.features.Tensor(shape=(d,), dtype=f32, doc=FEATURES_DOC["lengthscale"]),
        "outputscale": tfds.features.Scalar(dtype=f32, doc=FEATURES_DOC["outputscale"]),
        "noise_variance": tfds.features.Scalar(dtype=f32, doc=FEATURES_DOC["noise_variance"]),
        "task_seed": tfds.features.Scalar(dtype=np.int64, doc=FEATURES_DOC["task_seed"]),
    })
    return tfds.core.DatasetInfo(
        builder=self, description=__doc__, features=features, disable_shuffling=True,
        metadata=tfds.core.MetadataDict(corpus_config=c.to_json()),
        citation="Müller et al., PFNs4BO, ICML 2023 (prior); Chen et al., OptFormer, NeurIPS 2022.")

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    c = self.corpus_config
    return {"train": self._generate_examples("train", c.num_train),
            "validation": self._generate_examples("validation", c.num_validation)}

  def _generate_examples(self, split: str, num: int) -> Iterator[tuple[int, dict]]:
    """Yields (index, trajectory) in order, generating `chunk_size` at a time."""
    c = self.corpus_config
    bar = None
    if self.progress:
      import tqdm  # Only for the optional progress bar.
      bar = tqdm.tqdm(total=num, desc=f"{split} trajectories", unit="traj", smoothing=0.1)
    for start in range(0, num, c.chunk_size):
      count = min(c.chunk_size, num - start)
      out = behaviour.generate(c.prior, count, c.num_trials, c.algorithm_mix, c.seed, split=split,
                               start=start, behaviour_config=c.behaviour, stats=self.stats[split])
      for i in range(count):
        yield start + i, {k: v[i] for k, v in out.items()}
      if bar is not None:
        bar.update(count)
    if bar is not None:
      bar.close()


def build_corpus(data_dir: str, corpus_config: CorpusConfig, progress: bool = False) -> OptformerCorpus:
  """Generates and writes the corpus (no-op if this exact config already exists).

  Returns the prepared builder; `builder.data_dir` is the versioned dataset folder
  and `builder.stats` the per-split `GenerationStats` (empty if reused).
  """
  builder = OptformerCorpus(corpus_config=corpus_config, data_dir=data_dir, progress=progress)
  t = time.perf_counter()
  builder.download_and_prepare()
  builder.build_seconds = time.perf_counter() - t
  return builder


def find_corpus_dirs(data_dir: str) -> list[str]:
  """Versioned dataset folders (holding dataset_info.json) under `data_dir`, sorted."""
  found = []
  for root, _, files in os.walk(data_dir):
    if "dataset_info.json" in files and not os.path.basename(root).startswith("incomplete"):
      found.append(root)
  return sorted(found)


def resolve_corpus_dir(data_dir: str) -> str:
  """The one versioned dataset folder under `data_dir` (the newest version if one
  config has several).

  Raises:
    FileNotFoundError: no corpus under data_dir. ValueError: several configs.
  """
  dirs = find_corpus_dirs(data_dir)
  if not dirs:
    raise FileNotFoundError(f"No corpus (dataset_info.json) under {data_dir!r}.")
  if len({os.path.dirname(d) for d in dirs}) > 1:
    raise ValueError(f"Several corpora under {data_dir!r}; pass one of {dirs}.")
  return max(dirs, key=lambda d: tfds.core.Version(os.path.basename(d)))


def load_corpus(data_dir: str, split: str = "train"):
  """Random-access source of a split: `len(src)`, `src[i]` -> dict of numpy arrays.

  Args:
    data_dir: a versioned dataset folder, or a folder holding one corpus
      (see `resolve_corpus_dir`).
    split: "train" or "validation" (tfds split syntax like "train[:10]" works too).

  Raises:
    FileNotFoundError: no corpus under data_dir. ValueError: several corpora.
  """
  builder = tfds.builder_from_directory(resolve_corpus_dir(data_dir))
  return CorpusSource(builder.as_data_source(split=split), builder.info.features)


class CorpusSource:
  """Random access to one split: `src[i]` -> dict of numpy arrays (scalars as 0-d arrays).

  Wraps tfds's ArrayRecordDataSource, which returns Python scalars for
  scalar features; here every value has the feature's declared dtype.
  """

  def __init__(self, source, features):
    self.source = source
    self._dtypes = {k: np.dtype(f.np_dtype) for k, f in features.items()}

  def __len__(self) -> int:
    return len(self.source)

  def _cast(self, record: dict) -> dict:
    return {k: np.asarray(v, dtype=self._dtypes[k]) for k, v in record.items()}

  def __getitem__(self, index: int) -> dict:
    return self._cast(self.source[index])

  def __getitems__(self, indices) -> list[dict]:
    return [self._cast(r) for r in self.source.__getitems__(list(indices))]

  def __repr__(self) -> str:
    return f"CorpusSource({self.source!r})"


def load_corpus_config(data_dir: str) -> CorpusConfig:
  """The `CorpusConfig` a corpus folder (see `load_corpus`) was built with."""
  with open(os.path.join(resolve_corpus_dir(data_dir), "metadata.json")) as fp:
    return CorpusConfig.from_json(json.load(fp)["corpus_config"])
