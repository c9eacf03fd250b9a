"""stiwatch's weekly digest: selection, trends, rendering and exactly-once delivery."""
