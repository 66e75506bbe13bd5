"""How personal data is shown in the staff pages."""


def mask_phone(phone: str) -> str:
    """Show only the last 4 digits: `+5511988887777` -> `•••••••••7777`."""
    if not phone:
        return ""
    return "•" * max(len(phone) - 4, 0) + phone[-4:]
