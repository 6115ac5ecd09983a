"""ENS: the code shared by every Lambda function, shipped as the `ens` layer.

`ens.core` is pure (no AWS, no network); `ens.adapters` holds one adapter per outside system;
`ens.services` holds one module per function's service logic (`ens.services.webhook`), which ties
them together behind small interfaces.
"""
