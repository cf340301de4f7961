"""kpremia.live"""
