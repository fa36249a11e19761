"""Off-chain side of PMSR market: encoding, secret sharing, encryption, map templates and DP."""
