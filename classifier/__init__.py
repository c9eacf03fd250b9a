"""stiwatch's classifier: policy relevance, policy areas, technology domains, countries, regions."""
