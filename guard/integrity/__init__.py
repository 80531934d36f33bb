"""The file-integrity half: policy, signed manifests, trust, the verifier and the trees it
looks at, and sign / restore / watch / status."""
