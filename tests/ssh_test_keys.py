"""Real OpenSSH keys for tests only, made once with `ssh-keygen` (ed25519, ecdsa-sha2-nistp256, rsa 2048) so the
pure key reader (components.ssh_keys) is tested against what OpenSSH writes. Nothing outside the tests uses them;
the fingerprints are what `ssh-keygen -l -E md5` printed for each public key."""

from __future__ import annotations

DEPLOY_PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKfzOVcUM9c3bFCZwGA5vDjKtYsxYii94J2icBkmSzRn deploy@ci"
DEPLOY_FINGERPRINT = "66:45:43:d0:52:31:bd:33:14:bb:5c:ef:92:aa:35:10"
OTHER_DEPLOY_PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEhU8kU1f5ceMSRq/GiLAfLE7P8rPcUl1yiTx4zSYEai other@ci"
"""Another valid ed25519 key (the host key's public half) standing in for a rotated deploy key."""

HOST_PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACBIVPJFNX+XHjEkavxoiwHyxOz/Kz3FJdcok8eM0mBGogAAAJgHpeXoB6Xl\n"
    "6AAAAAtzc2gtZWQyNTUxOQAAACBIVPJFNX+XHjEkavxoiwHyxOz/Kz3FJdcok8eM0mBGog\n"
    "AAAEBinI0rSqvdmb87bZlYvKUy82GZ3rKZA63ldZjwhhHxtkhU8kU1f5ceMSRq/GiLAfLE\n"
    "7P8rPcUl1yiTx4zSYEaiAAAAEmRldnRvb2xzLWhvc3QtdGVzdAECAw==\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
HOST_PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEhU8kU1f5ceMSRq/GiLAfLE7P8rPcUl1yiTx4zSYEai"
"""HOST_PRIVATE_KEY's public half, without its comment (`devtools-host-test`)."""
HOST_FINGERPRINT = "18:b5:e7:93:dd:c7:a4:95:d1:58:a5:4c:2f:b8:3c:6d"

ENCRYPTED_PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABCNMK0NCe\n"
    "Fy6Gn995+JTMVAAAAAEAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIKlFhFLwm3fTU8XE\n"
    "3kqNaNxj8dDNMwgDg50vteEi2jQTAAAAkPhsHIZwC3YEcaMwkdEvnSxraC0zLYW8U1cX8Z\n"
    "1o8PkfIXfane0A7691eYGM2X1oSt3vzy5DZGWJePVcMMsrGU43C5pOE3UeXLiF1gWZHwt8\n"
    "H8PCpxIkpjkVR45Mas5/fo9wo+02pJTVXeV6VQ7GBYVsSlx9DeTV5MTSLasOzfULKf2WB1\n"
    "67k6tbO7hsSdGu+w==\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
"""An ed25519 private key protected by the passphrase `test-passphrase`."""

ECDSA_PUBLIC_KEY = (
    "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBM2/JLHwyDTwupi0YIB0K/8BklqV"
    "75ZO+mOOVp69xqUj7GrEvl+5OXKXy8DmX3rQVM3e/eh0w8Ganq4C3sIq4rw= ec@test"
)
ECDSA_FINGERPRINT = "dc:d9:ef:3a:a9:96:5a:6d:44:13:cc:0c:14:39:e1:2b"
RSA_PUBLIC_KEY = (
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC3qjChCfOke/w8Vq5TVG4wIZ8GU7u069+mEFrQCfM1N4VwNzmO1b/hN5nR7WM1"
    "u9bUjMqqjX+99RlgRhJ9CMq7qlF3ZUTaumzkAmkdp8nn76gZfrXzu0O5kMT4vbKv1R0xLifD2bier/FwRuSDq8UxlqZd+Lwmz2Dp"
    "6vKGpA34iF/5KDxATghnjW0DLzMQMQUgXJbsLCWYQDZfopdzcIEjZ33FMsZx4teU9LamX9xbfdjwxMYF+U4LzqjyOt8uNmF4Qk6d"
    "1fyEInX5FWCLK5+ZsE9uwGvjWoSdQK7+pp4XpyOZL2qHscMPMbT2iOjDpUsLooSmQvgqwM8twNNpXzkv rsa@test"
)
RSA_FINGERPRINT = "e8:ad:e3:48:bb:41:15:f9:26:c1:31:f3:5b:94:15:1b"
