"""Dashboard support: the security headers the dashboard's pages carry.

Nothing is fetched from the internet: the charting library (TradingView lightweight-charts,
Apache-2.0) is vendored under ``web/static/vendor/`` with its LICENSE and NOTICE and served
with the other static files (``api/static_files.py``).
"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)

# The dashboard loads only its own files; scripts stay strictly same-origin. ``data:`` images
# are the TOTP QR code (an SVG data URI rendered by the server). lightweight-charts writes no
# <style> element (its attribution logo, the one that would, is switched off and the library
# is named in the page instead), so 'unsafe-inline' styles are no longer needed by the charts.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # The page shell is tiny and changes with upgrades: always revalidate it.
    "Cache-Control": "no-cache",
}
