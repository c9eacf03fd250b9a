"""stiwatch's crawler: a Scrapy project (see scrapy.cfg) plus the source registry.

Importing the package stays cheap: Scrapy is loaded only by the modules that need it.
"""
