"""One module per EWS operation the simulator implements, as exchangelib's `services/` has one per service.

Each module has `OPERATION` (the EWS name) and `call(endpoint, request, context)`, which turns the request
element into the `m:{Operation}Response` element. `exchange_simulator.ews.EwsEndpoint` dispatches to them;
`common`, `shapes` and `restrictions` hold what several operations share.
"""
