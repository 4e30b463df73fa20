"""`--model hf://OWNER/NAME[@REVISION]`: a model from the Hugging Face Hub (the `hub` extra).

The files a run needs come through huggingface_hub into the Hub's own cache, so its variables hold:
HF_HOME / HF_HUB_CACHE (where), HF_HUB_OFFLINE=1 (from the cache only), HF_TOKEN (private and gated
repositories), HF_ENDPOINT (a mirror). The weights are then checked like any local file.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fadercli import say
from fadercli.errors import DownloadError, ModelError, UsageError, import_extra, reason
from fadercli.weights.registry import MODEL_FILE, RUN_CLASSIFIER

PREFIX = "hf://"
OPTIONAL_FILES = (RUN_CLASSIFIER, "README.md")  # a classifier for estimates and inspect; the card
_SPEC = re.compile(r"hf://([A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@([\w./-]+))?")


@dataclass(frozen=True)
class HubModel:
    repo_id: str
    revision: str | None  # a branch, tag or commit; None: the repository's default branch


def parse(spec: str) -> HubModel:
    match = _SPEC.fullmatch(spec)
    if match is None or ".." in spec:
        raise UsageError(f"{spec!r}: give hf://OWNER/NAME or hf://OWNER/NAME@REVISION")
    return HubModel(match.group(1), match.group(2))


def fetch_hub_model(spec: str) -> tuple[Path, str]:
    """Download (or find in the Hub's cache) the model file of `spec` and the optional files beside it;
    the model file's path and the commit it came from (the snapshot folder's name)."""
    model = parse(spec)
    import_extra("huggingface_hub", "hub")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    with hub_errors(spec):
        cached = not _answers(model, spec)
        path = Path(hf_hub_download(model.repo_id, MODEL_FILE, revision=model.revision, local_files_only=cached))
        commit = path.parent.name
        for name in OPTIONAL_FILES:  # from the same commit, so that they match the weights
            try:
                hf_hub_download(model.repo_id, name, revision=commit, local_files_only=cached)
            except EntryNotFoundError:  # not in the repository (or, offline, not cached)
                pass
    return path, commit


def _answers(model: HubModel, spec: str) -> bool:
    """Whether the Hub answers a first question about the model file (not asked with HF_HUB_OFFLINE=1).
    Where nothing answers (no network, a closed port, a timeout), the files come from the Hub's cache
    alone: huggingface_hub would ask five times more with back-off, half a minute, before looking
    there. Any answer, even an error, leaves the download to huggingface_hub as usual."""
    from httpx2 import TransportError  # huggingface_hub 2's HTTP client: a request that got no answer
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError

    if constants.is_offline_mode():
        return False
    try:
        get_hf_file_metadata(hf_hub_url(model.repo_id, MODEL_FILE, revision=model.revision))
    except TransportError as e:
        say(f"{spec}: the Hub does not answer ({reason(e)}); looking in its cache", logging.DEBUG)
        return False
    except HfHubHTTPError:  # no such repository, gated, a server error...: hf_hub_download says which
        pass
    return True


@contextmanager
def hub_errors(spec: str, uploading: bool = False) -> Iterator[None]:
    """huggingface_hub's failures as one-line fader errors (most specific first)."""
    from httpx2 import HTTPError as transport  # huggingface_hub 2's HTTP client, whose errors are not OSErrors
    from huggingface_hub import errors

    repo = spec.removeprefix(PREFIX).split("@")[0]
    try:
        yield
    except errors.GatedRepoError:
        raise ModelError(
            f"{spec}: a gated repository: accept its conditions at https://huggingface.co/{repo} and set HF_TOKEN"
        ) from None
    except errors.RepositoryNotFoundError:
        hint = "check the name and your HF_TOKEN's rights" if uploading else "a private one needs HF_TOKEN"
        raise ModelError(f"{spec}: no such repository on the Hub ({hint})") from None
    except errors.RevisionNotFoundError:
        raise ModelError(f"{spec}: no such revision in {repo}") from None
    except errors.LocalEntryNotFoundError:
        raise DownloadError(f"{spec}: not in the Hub cache, and the Hub cannot be reached (offline?)") from None
    except errors.EntryNotFoundError:
        raise ModelError(f"{spec}: the repository has no {MODEL_FILE}: not a model fader made") from None
    except errors.HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if uploading and status in (401, 403):
            raise DownloadError(
                f"{spec}: the Hub refused the upload ({status}): set HF_TOKEN to a token that may write"
            ) from None
        raise DownloadError(f"{spec}: the Hub answered {status or 'an error'}: {reason(e)}") from None
    except (OSError, transport) as e:  # the network, the cache's disk
        raise DownloadError(f"{spec}: {type(e).__name__}: {reason(e)}") from None
