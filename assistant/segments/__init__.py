"""Customer segments: RFM + clusters, the segment classifier, answers derived from orders."""
