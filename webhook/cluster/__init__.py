"""The live cluster: the API client, the watched cluster view, `netguard doctor`."""
