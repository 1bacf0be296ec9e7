"""The named system processes a scenario step may give as its parent, as a host runs them."""

from __future__ import annotations

# Named parents that are not steps: (image, command line, account)
SYSTEM_PARENTS = {
    "explorer": (r"C:\Windows\explorer.exe", r"C:\Windows\Explorer.EXE", "user"),
    "services": (
        r"C:\Windows\System32\services.exe",
        r"C:\Windows\system32\services.exe",
        "system",
    ),
    "svchost-dcomlaunch": (
        r"C:\Windows\System32\svchost.exe",
        r"C:\Windows\system32\svchost.exe -k DcomLaunch -p",
        "system",
    ),
    "svchost-schedule": (
        r"C:\Windows\System32\svchost.exe",
        r"C:\Windows\system32\svchost.exe -k netsvcs -p -s Schedule",
        "system",
    ),
    "ccmexec": (
        r"C:\Windows\CCM\CcmExec.exe",
        r"C:\Windows\CCM\CcmExec.exe",
        "system",
    ),
    "intune-agent": (
        r"C:\Program Files (x86)\Microsoft Intune Management Extension"
        r"\Microsoft.Management.Services.IntuneWindowsAgent.exe",
        r'"C:\Program Files (x86)\Microsoft Intune Management Extension'
        r'\Microsoft.Management.Services.IntuneWindowsAgent.exe"',
        "system",
    ),
}
