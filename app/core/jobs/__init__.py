"""Jobs: what clients submit, the rules that accept it, the lease a worker holds, the repairs after crashes."""
