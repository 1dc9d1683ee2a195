"""Adapters that put toolmend's parser inside other servers (each imports its server's package, so
import the one you use; this package imports none of them):

- :mod:`toolmend.integrations.vllm_plugin`: a vLLM tool-call parser plugin, ``--tool-call-parser toolmend``.
- :mod:`toolmend.integrations.sglang`: an SGLang function-call detector, ``--tool-call-parser toolmend``.
- :mod:`toolmend.integrations.litellm`: a LiteLLM proxy callback that mends responses.

See ``docs/integrations.md``.
"""

from __future__ import annotations

__all__: list[str] = []
