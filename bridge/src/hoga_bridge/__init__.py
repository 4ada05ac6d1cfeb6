"""hoga-bridge: Kiwoom OpenAPI+ controls in worker processes, served to hoga over WebSocket.

Only ``control_qt`` touches COM/Qt; everything else runs on any OS, against ``fake_control``
in tests. See docs/kiwoom-openapi.md in the hoga repository.
"""

PROTOCOL_VERSION = 1
