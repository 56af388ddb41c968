"""One connection for many tabs (``share=``): the messages participants exchange and the pure
routing of a shared WebSocket (:mod:`pyrt.share.ws_relay`) or event stream
(:mod:`pyrt.share.sse_relay`); what a runtime must offer (a lock and a channel) is
:mod:`pyrt.share.channel`.
"""
