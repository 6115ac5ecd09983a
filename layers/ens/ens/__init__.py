"""ENS: the code shared by every Lambda function, shipped as the `ens` layer.

`ens.core` is pure (no AWS, no network); `ens.adapters` holds one adapter per outside system;
service modules such as `ens.webhook` tie them together behind small interfaces.
"""
