"""kpremia.encoders"""
