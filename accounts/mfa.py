"""Showing an authenticator app's secret for enrolment: as a QR code and as typed text.

(How recently a session proved possession of a device, the step-up, is common.step_up.)
"""

import base64
import io

import qrcode
import qrcode.image.svg
from django_otp.plugins.otp_totp.models import TOTPDevice


def totp_qr_data_uri(device: TOTPDevice) -> str:
    """The device's otpauth:// URL as a QR code in a data: URI (the CSP allows data: images)."""
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathFillImage)
    buffer = io.BytesIO()
    image.save(buffer)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


def totp_secret_display(device: TOTPDevice) -> str:
    """The secret in base32, in groups of four, for typing into an app by hand."""
    secret = base64.b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
