"""The public contract as code: input events, outputs, the decoder, the policy.

Everything here mirrors ``CONTRACT.md``; the JSON Schema files and the AsyncAPI document beside
this module are generated from these models (``python -m closedloop.schemas.generate``).
"""
