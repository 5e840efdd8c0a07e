"""The cluster PKI: certificate authorities, leaf certificates and the service-account key.

Everything is generated on the control machine, in the cluster's folder of the state store,
with the ``cryptography`` library. ``x509`` holds the primitives (keys, CAs, issuing,
inspection); ``ensure`` decides, for a wanted certificate, whether the one on disk is kept,
issued or renewed, and why. The Ansible role ``pki`` calls ``ensure`` through a module.
"""
